// Package merge orders the read positions of many topics by sequence
// number, for stores with one global sequence whose Read merges the
// topics a pattern matches: a binary min-heap, O(log k) per event for k
// topics where a scan is O(k).
package merge

// Heap is a min-heap of heads by Seq. Build it with Init; the smallest
// head is Items[0].
type Heap[H any] struct {
	Items []H
	Seq   func(*H) uint64
}

// Init orders Items.
func (h *Heap[H]) Init() {
	for i := len(h.Items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// Fix restores the order after Items[0]'s Seq grew.
func (h *Heap[H]) Fix() { h.down(0) }

// Pop removes Items[0].
func (h *Heap[H]) Pop() {
	n := len(h.Items) - 1
	h.Items[0] = h.Items[n]
	var zero H
	h.Items[n] = zero
	h.Items = h.Items[:n]
	if n > 0 {
		h.down(0)
	}
}

func (h *Heap[H]) down(i int) {
	n := len(h.Items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.Seq(&h.Items[r]) < h.Seq(&h.Items[l]) {
			m = r
		}
		if h.Seq(&h.Items[m]) >= h.Seq(&h.Items[i]) {
			return
		}
		h.Items[i], h.Items[m] = h.Items[m], h.Items[i]
		i = m
	}
}
