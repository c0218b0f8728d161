package main

import (
	"os"
	"path/filepath"
)

// defaultStateDir is where warrend keeps its state unless --state-dir
// says otherwise: Warren under %ProgramData% (C:\ProgramData\Warren),
// where services keep machine-wide data.
var defaultStateDir = filepath.Join(programData(), "Warren")

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}
