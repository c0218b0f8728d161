package netstack

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestFixTCP(t *testing.T) {
	const all = header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin | header.TCPFlagCwr
	tests := []struct {
		name      string
		seg       int
		last      bool
		wantSeq   uint32
		wantFlags header.TCPFlags
	}{
		{"only packet", 0, true, 1000, all},
		{"first of several", 0, false, 1000, header.TCPFlagAck | header.TCPFlagCwr},
		{"middle", 2, false, 1000 + 2*1240, header.TCPFlagAck},
		{"last", 3, true, 1000 + 3*1240, header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tcp := header.TCP(make([]byte, header.TCPMinimumSize))
			tcp.Encode(&header.TCPFields{SeqNum: 1000, DataOffset: header.TCPMinimumSize, Flags: all})
			fixTCP(tcp, tt.seg, 1240, tt.last)
			if got := tcp.SequenceNumber(); got != tt.wantSeq {
				t.Errorf("seq %d, want %d", got, tt.wantSeq)
			}
			if got := tcp.Flags(); got != tt.wantFlags {
				t.Errorf("flags %s, want %s", got, tt.wantFlags)
			}
		})
	}
}
