package flowspool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"

	"github.com/warrenmesh/warren/internal/wire"
)

// A record on disk: the payload's length (4 bytes, little endian), its
// CRC-32C (4 bytes), then the payload, the record's JSON.
const headerLen = 8

// maxRecordLen bounds one record's payload; a longer length is corruption.
const maxRecordLen = 64 << 10

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("flow spool: corrupt record")

func encodeRecord(r wire.FlowRecord) ([]byte, error) {
	p, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(p) > maxRecordLen {
		return nil, errors.New("flow spool: record too large")
	}
	b := make([]byte, headerLen, headerLen+len(p))
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(p, crcTable))
	return append(b, p...), nil
}

// decodeRecord decodes the record at the start of b. It returns the
// record's length n on disk when the framing is intact (so a damaged
// payload, reported as an error, can be skipped), and n == 0 when it is
// not: nothing after it in b can be trusted.
func decodeRecord(b []byte) (wire.FlowRecord, int, error) {
	var r wire.FlowRecord
	if len(b) < headerLen {
		return r, 0, errCorrupt
	}
	l := binary.LittleEndian.Uint32(b[0:4])
	if l == 0 || l > maxRecordLen || int(l) > len(b)-headerLen {
		return r, 0, errCorrupt
	}
	n := headerLen + int(l)
	p := b[headerLen:n]
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(b[4:8]) {
		return r, n, errCorrupt
	}
	if err := json.Unmarshal(p, &r); err != nil {
		return r, n, errCorrupt
	}
	return r, n, nil
}

// countRecords counts the framed records at the start of b (damaged
// payloads included: they keep their position) and returns the count
// and the bytes they span.
func countRecords(b []byte) (count uint64, good int) {
	for good < len(b) {
		_, n, _ := decodeRecord(b[good:])
		if n == 0 {
			break
		}
		good += n
		count++
	}
	return count, good
}
