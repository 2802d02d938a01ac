package merge

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHeapMerges: popping through the heap, advancing each head, gives
// every sequence number of every list in order.
func TestHeapMerges(t *testing.T) {
	type head struct{ list []uint64 }
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var all []uint64
		var heads []head
		next := uint64(0)
		lists := make([][]uint64, 1+r.IntN(40))
		for range 1 + r.IntN(500) {
			next += 1 + uint64(r.IntN(3))
			i := r.IntN(len(lists))
			lists[i] = append(lists[i], next)
			all = append(all, next)
		}
		for _, l := range lists {
			if len(l) > 0 {
				heads = append(heads, head{l})
			}
		}
		h := Heap[head]{Items: heads, Seq: func(x *head) uint64 { return x.list[0] }}
		h.Init()
		var got []uint64
		for len(h.Items) > 0 {
			top := &h.Items[0]
			got = append(got, top.list[0])
			if top.list = top.list[1:]; len(top.list) == 0 {
				h.Pop()
			} else {
				h.Fix()
			}
		}
		if !slices.Equal(got, all) {
			t.Fatalf("round %d: merged %v, want %v", round, got, all)
		}
	}
}
