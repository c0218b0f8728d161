package winetest

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"testing"
)

// TestForwarderDLL reads the DLL back with debug/pe and walks its export
// table as a loader does: each name leads to its forwarder string.
func TestForwarderDLL(t *testing.T) {
	fwd := map[string]string{"ProcessPrng": "advapi32.SystemFunction036", "Another": "kernel32.Sleep"}
	f, err := pe.NewFile(bytes.NewReader(ForwarderDLL("stand-in.dll", fwd)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 || f.Characteristics&pe.IMAGE_FILE_DLL == 0 {
		t.Fatalf("machine %#x, characteristics %#x: not an x86-64 DLL", f.Machine, f.Characteristics)
	}
	opt, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok || opt.AddressOfEntryPoint != 0 {
		t.Fatalf("optional header %T, want PE32+ with no entry point", f.OptionalHeader)
	}
	dir := opt.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_EXPORT]
	if len(f.Sections) != 1 {
		t.Fatalf("%d sections, want 1", len(f.Sections))
	}
	s := f.Sections[0]
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	at := func(rva uint32) []byte { return data[rva-s.VirtualAddress:] }
	cstr := func(rva uint32) string { b := at(rva); return string(b[:bytes.IndexByte(b, 0)]) }
	le := binary.LittleEndian
	ed := at(dir.VirtualAddress)
	if got := cstr(le.Uint32(ed[12:])); got != "stand-in.dll" {
		t.Errorf("DLL name %q", got)
	}
	n := le.Uint32(ed[24:])
	if n != uint32(len(fwd)) || le.Uint32(ed[20:]) != n {
		t.Fatalf("%d names, %d functions, want %d", n, le.Uint32(ed[20:]), len(fwd))
	}
	eat, ent, ords := le.Uint32(ed[28:]), le.Uint32(ed[32:]), le.Uint32(ed[36:])
	prev := ""
	for i := range n {
		name := cstr(le.Uint32(at(ent + 4*i)))
		if name <= prev {
			t.Errorf("names not sorted: %q after %q", name, prev)
		}
		prev = name
		fn := le.Uint32(at(eat + 4*uint32(le.Uint16(at(ords+2*i)))))
		if fn < dir.VirtualAddress || fn >= dir.VirtualAddress+dir.Size {
			t.Errorf("%s: address %#x outside the export directory: not a forwarder", name, fn)
		}
		if got := cstr(fn); got != fwd[name] {
			t.Errorf("%s forwards to %q, want %q", name, got, fwd[name])
		}
	}
}
