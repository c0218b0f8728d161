package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// FrameVersion is the version byte of every frame this build writes.
const FrameVersion = 1

// HeaderSize is the size of a frame header.
const HeaderSize = 6

// Size limits for payloads. Nodes send small messages; netmaps can be large.
const (
	MaxNodeMessage        = 64 << 10 // what the coordinator accepts from a node
	MaxCoordinatorMessage = 32 << 20 // what a node accepts from the coordinator
	// MaxFlowBatch is what the coordinator accepts in one FlowBatch
	// from a streaming (registered) node; see StreamLimit.
	MaxFlowBatch = 1 << 20
)

// Errors returned by the codec.
var (
	ErrFrameVersion = errors.New("wire: unsupported frame version")
	ErrUnknownType  = errors.New("wire: unknown message type")
	ErrTooLarge     = errors.New("wire: frame too large")
)

// Encode returns m as one frame.
func Encode(m Message) ([]byte, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %v: %w", m.WireType(), err)
	}
	return EncodeRaw(m.WireType(), payload), nil
}

// EncodeRaw frames an already-encoded JSON payload of type t. It lets a
// sender encode a message once and frame it for many receivers.
func EncodeRaw(t Type, payload []byte) []byte {
	b := make([]byte, HeaderSize+len(payload))
	b[0] = FrameVersion
	b[1] = byte(t)
	binary.BigEndian.PutUint32(b[2:6], uint32(len(payload)))
	copy(b[HeaderSize:], payload)
	return b
}

// WriteMessage encodes m and writes it to w as one frame.
func WriteMessage(w io.Writer, m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadFrame reads one frame from r and returns its type and payload. It
// refuses payloads larger than max before allocating them.
func ReadFrame(r io.Reader, max int) (Type, []byte, error) {
	return readFrame(r, func(Type) int { return max })
}

// StreamLimit is the coordinator's limit by type on a streaming node's
// messages: MaxFlowBatch for flow batches, MaxNodeMessage for the rest.
func StreamLimit(t Type) int {
	if t == TypeFlowBatch {
		return MaxFlowBatch
	}
	return MaxNodeMessage
}

// ReadMessageLimit is ReadMessage with a limit by message type.
func ReadMessageLimit(r io.Reader, limit func(Type) int) (Message, error) {
	t, payload, err := readFrame(r, limit)
	if err != nil {
		return nil, err
	}
	return Decode(t, payload)
}

func readFrame(r io.Reader, limit func(Type) int) (Type, []byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0] != FrameVersion {
		return 0, nil, fmt.Errorf("%w: %d", ErrFrameVersion, h[0])
	}
	t := Type(h[1])
	n := binary.BigEndian.Uint32(h[2:6])
	if max := limit(t); uint64(n) > uint64(max) {
		return t, nil, fmt.Errorf("%w: %v of %d bytes, limit %d", ErrTooLarge, t, n, max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return t, nil, fmt.Errorf("wire: read %v payload: %w", t, err)
	}
	return t, payload, nil
}

// Decode parses a payload of type t.
func Decode(t Type, payload []byte) (Message, error) {
	m := New(t)
	if m == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, byte(t))
	}
	if err := json.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("wire: decode %v: %w", t, err)
	}
	return m, nil
}

// ReadMessage reads and decodes one frame from r, refusing payloads larger
// than max.
func ReadMessage(r io.Reader, max int) (Message, error) {
	t, payload, err := ReadFrame(r, max)
	if err != nil {
		return nil, err
	}
	return Decode(t, payload)
}
