// Command printversion prints version.String(), for the stamping test.
package main

import (
	"fmt"

	"github.com/warrenmesh/warren/internal/version"
)

func main() { fmt.Print(version.String()) }
