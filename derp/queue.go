package derp

// fifo is a bounded first-in first-out queue of frames whose buffer grows
// with what it holds and is released once it empties, so that an idle
// client's queues cost nothing but their headers. Not safe for concurrent
// use: its owner locks.
type fifo struct {
	buf  [][]byte // ring; nil while empty (or a small one kept)
	head int      // index of the oldest frame
	n    int      // frames held
}

const (
	fifoMinCap  = 4 // first buffer
	fifoKeepCap = 4 // an emptied buffer up to this size is kept (control frames come every keepalive)
)

// push appends b unless the queue holds limit frames.
func (q *fifo) push(b []byte, limit int) bool {
	if q.n >= limit {
		return false
	}
	if q.n == len(q.buf) {
		q.grow(limit)
	}
	q.buf[(q.head+q.n)%len(q.buf)] = b
	q.n++
	return true
}

// pushDropOldest appends b, first discarding the oldest frame if the queue
// holds limit frames; it reports whether it discarded one.
func (q *fifo) pushDropOldest(b []byte, limit int) (dropped bool) {
	if q.n >= limit {
		q.pop()
		dropped = true
	}
	q.push(b, limit)
	return dropped
}

// pop removes and returns the oldest frame.
func (q *fifo) pop() ([]byte, bool) {
	if q.n == 0 {
		return nil, false
	}
	b := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > fifoKeepCap {
			q.buf = nil
		}
	}
	return b, true
}

// len returns how many frames the queue holds.
func (q *fifo) len() int { return q.n }

// grow doubles the buffer (to at most limit), keeping the frames in order.
func (q *fifo) grow(limit int) {
	size := min(max(fifoMinCap, 2*len(q.buf)), limit)
	buf := make([][]byte, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}
