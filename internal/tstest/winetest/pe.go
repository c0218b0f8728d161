package winetest

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// PE32+ layout constants (Microsoft's PE/COFF specification).
const (
	fileAlign    = 0x200
	sectionAlign = 0x1000
	sectionRVA   = sectionAlign // the one section's address in the image
	peOffset     = 0x40         // e_lfanew: the PE header follows the DOS header
	optHdrSize   = 240          // PE32+ optional header with 16 data directories
	exportDirLen = 40
)

// ForwarderDLL returns a PE32+ (x86-64) DLL named name with no code, no
// imports and no entry point, whose only content is an export table in
// which each exported function forwards to another DLL's:
// forwards["ProcessPrng"] = "advapi32.SystemFunction036" makes the loader
// resolve ProcessPrng to advapi32's SystemFunction036.
func ForwarderDLL(name string, forwards map[string]string) []byte {
	names := make([]string, 0, len(forwards))
	for n := range forwards {
		names = append(names, n)
	}
	sort.Strings(names) // the name table must be sorted for binary search

	// The section: the export directory, its three tables, then strings.
	n := uint32(len(names))
	eat := uint32(exportDirLen)       // address table: one RVA per function
	ent := eat + 4*n                  // name pointer table
	ords := ent + 4*n                 // ordinal table (uint16 each)
	strs := ords + 2*n + (2*n)%4      // strings, 4-byte aligned start
	var str bytes.Buffer              // string data, offsets from strs
	addStr := func(s string) uint32 { // returns the string's RVA
		off := strs + uint32(str.Len())
		str.WriteString(s)
		str.WriteByte(0)
		return sectionRVA + off
	}
	dllName := addStr(name)
	fwd := make([]uint32, n)
	nameRVA := make([]uint32, n)
	for i, fn := range names {
		nameRVA[i] = addStr(fn)
		fwd[i] = addStr(forwards[fn])
	}
	sec := make([]byte, strs+uint32(str.Len()))
	le := binary.LittleEndian
	// IMAGE_EXPORT_DIRECTORY
	le.PutUint32(sec[12:], dllName)
	le.PutUint32(sec[16:], 1) // ordinal base
	le.PutUint32(sec[20:], n) // functions
	le.PutUint32(sec[24:], n) // names
	le.PutUint32(sec[28:], sectionRVA+eat)
	le.PutUint32(sec[32:], sectionRVA+ent)
	le.PutUint32(sec[36:], sectionRVA+ords)
	for i := range names {
		// An address inside the export directory's range is a forwarder
		// string, not code.
		le.PutUint32(sec[eat+4*uint32(i):], fwd[i])
		le.PutUint32(sec[ent+4*uint32(i):], nameRVA[i])
		le.PutUint16(sec[ords+2*uint32(i):], uint16(i))
	}
	copy(sec[strs:], str.Bytes())

	rawSize := alignUp(uint32(len(sec)), fileAlign)
	out := make([]byte, fileAlign+rawSize) // headers fit in the first 0x200 bytes

	// DOS header: only the magic and the PE header's offset matter.
	copy(out, "MZ")
	le.PutUint32(out[0x3c:], peOffset)

	p := out[peOffset:]
	copy(p, "PE\x00\x00")
	// COFF file header.
	coff := p[4:]
	le.PutUint16(coff[0:], 0x8664)      // machine: x86-64
	le.PutUint16(coff[2:], 1)           // one section
	le.PutUint16(coff[16:], optHdrSize) // optional header size
	le.PutUint16(coff[18:], 0x2022)     // executable image, large address aware, DLL

	// Optional header (PE32+).
	opt := coff[20:]
	le.PutUint16(opt[0:], 0x20b)
	le.PutUint32(opt[8:], rawSize)                                             // initialized data
	le.PutUint32(opt[20:], sectionRVA)                                         // base of code (there is none)
	le.PutUint64(opt[24:], 0x180000000)                                        // preferred image base
	le.PutUint32(opt[32:], sectionAlign)                                       // section alignment
	le.PutUint32(opt[36:], fileAlign)                                          // file alignment
	le.PutUint16(opt[40:], 6)                                                  // OS version 6.0
	le.PutUint16(opt[48:], 6)                                                  // subsystem version 6.0
	le.PutUint32(opt[56:], sectionRVA+alignUp(uint32(len(sec)), sectionAlign)) // size of image
	le.PutUint32(opt[60:], fileAlign)                                          // size of headers
	le.PutUint16(opt[68:], 3)                                                  // subsystem: console
	le.PutUint16(opt[70:], 0x0100)                                             // NX compatible
	le.PutUint64(opt[72:], 0x100000)                                           // stack reserve
	le.PutUint64(opt[80:], 0x1000)                                             // stack commit
	le.PutUint64(opt[88:], 0x100000)                                           // heap reserve
	le.PutUint64(opt[96:], 0x1000)                                             // heap commit
	le.PutUint32(opt[108:], 16)                                                // data directories
	le.PutUint32(opt[112:], sectionRVA)                                        // [0] export table: the whole section,
	le.PutUint32(opt[116:], uint32(len(sec)))                                  // so the forwarder strings are inside it

	// The section header.
	sh := opt[optHdrSize:]
	copy(sh, ".rdata")
	le.PutUint32(sh[8:], uint32(len(sec))) // virtual size
	le.PutUint32(sh[12:], sectionRVA)
	le.PutUint32(sh[16:], rawSize)
	le.PutUint32(sh[20:], fileAlign)  // file offset of the data
	le.PutUint32(sh[36:], 0x40000040) // initialized data, readable

	copy(out[fileAlign:], sec)
	return out
}

func alignUp(v, a uint32) uint32 { return (v + a - 1) &^ (a - 1) }
