package gateway

import (
	"context"
	"image/color"
	"sync"
	"testing"
	"unsafe"
)

// arenaMemory lends bytes of one arena, a fixed number of times, and records
// what is lent and given back.
type arenaMemory struct {
	arena []byte
	mu    sync.Mutex
	left  int // loans it still grants
	lent  []int
	freed int
	next  int
}

func (a *arenaMemory) AllocTensor(n int) ([]byte, func(), bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.left == 0 || a.next+n > len(a.arena) {
		return nil, nil, false
	}
	a.left--
	buf := a.arena[a.next : a.next+n : a.next+n]
	a.next += n
	a.lent = append(a.lent, n)
	return buf, func() { a.mu.Lock(); a.freed++; a.mu.Unlock() }, true
}

func TestClassifierPreprocessesIntoLentMemory(t *testing.T) {
	mem := &arenaMemory{arena: make([]byte, 1<<20), left: 1}
	// The backend records whether each batch lay in the arena.
	var mu sync.Mutex
	var inArena []bool
	backend := fishBackend(2, nil)
	backend.InferFunc = func(ctx context.Context, in Batch) (Scores, error) {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(in.Data)))
		base := uintptr(unsafe.Pointer(unsafe.SliceData(mem.arena)))
		mu.Lock()
		inArena = append(inArena, start >= base && start+uintptr(len(in.Data)) <= base+uintptr(len(mem.arena)))
		mu.Unlock()
		return scoreByRed(ctx, in)
	}
	c := loadedClassifier(t, backend, nil, WithTensorMemory(mem))
	images := [][]byte{
		solidPNG(t, color.NRGBA{1, 0, 0, 255}),
		[]byte("not an image"),
		solidPNG(t, color.NRGBA{2, 0, 0, 255}),
		solidPNG(t, color.NRGBA{0, 0, 0, 255}),
	}
	// The first request gets the loan (all four images), the second does not
	// and uses the Classifier's own buffer.
	for round, wantIn := range []bool{true, false} {
		inArena = nil
		results, errs := c.ClassifyBatch(context.Background(), images, 1)
		for i, want := range []string{"tuna", "", "eel", "cod"} {
			if want == "" {
				if errs[i] == nil {
					t.Errorf("round %d: the bad image was classified", round)
				}
				continue
			}
			if errs[i] != nil || results[i].Predictions[0].Label != want {
				t.Errorf("round %d, image %d: %v %+v, want %s", round, i, errs[i], results[i].Predictions, want)
			}
		}
		if len(inArena) != 2 || inArena[0] != wantIn || inArena[1] != wantIn {
			t.Errorf("round %d: batches in the lent memory: %v, want [%v %v]", round, inArena, wantIn, wantIn)
		}
	}
	item := c.state.Load().itemBytes
	if len(mem.lent) != 1 || mem.lent[0] != 4*item || mem.freed != 1 {
		t.Errorf("lent %v, freed %d; want one loan of %d bytes, given back", mem.lent, mem.freed, 4*item)
	}
}
