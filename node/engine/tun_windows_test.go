package engine

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/warrenmesh/warren/internal/key"
)

// TestWintunDLLMissing checks that, on a Windows host without wintun.dll
// where Windows looks for it, kernel TUN mode fails at once with an error
// that names the DLL and says where to put it.
func TestWintunDLLMissing(t *testing.T) {
	h, err := windows.LoadLibraryEx(wintunDLL, 0, windows.LOAD_LIBRARY_SEARCH_APPLICATION_DIR|windows.LOAD_LIBRARY_SEARCH_SYSTEM32)
	if err == nil {
		windows.FreeLibrary(h)
		t.Skip("skipping: wintun.dll is installed here")
	}
	_, err = New(Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.9.1/32")}, TUN: "WarrenTest"})
	if err == nil || !strings.Contains(err.Error(), "wintun.dll not found") || !strings.Contains(err.Error(), "beside warrend.exe") {
		t.Errorf("New in TUN mode without wintun.dll = %v; want an error naming wintun.dll and where to put it", err)
	}
}
