package bytebudget

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		reserve []int64
		want    []bool
		used    int64
	}{
		{"fits", 100, []int64{40, 60}, []bool{true, true}, 100},
		{"over refuses and holds nothing", 100, []int64{40, 61, 60}, []bool{true, false, true}, 100},
		{"unlimited counts", 0, []int64{1 << 40, 5}, []bool{true, true}, 1<<40 + 5},
		{"zero and negative always fit", 1, []int64{0, -3, 1}, []bool{true, true, true}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.limit)
			for i, n := range tc.reserve {
				if got := b.TryReserve(n); got != tc.want[i] {
					t.Fatalf("TryReserve(%d) #%d = %v, want %v", n, i, got, tc.want[i])
				}
			}
			if b.Used() != tc.used {
				t.Fatalf("Used = %d, want %d", b.Used(), tc.used)
			}
		})
	}
}

func TestNilBudgetIsUnlimited(t *testing.T) {
	var b *Budget
	if !b.TryReserve(1<<50) || b.Used() != 0 || b.Limit() != 0 || b.Refusals() != 0 {
		t.Fatal("nil budget must accept everything and count nothing")
	}
	b.Release(10)
}

func TestBudgetConcurrentNeverExceeds(t *testing.T) {
	b := New(1000)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				if b.TryReserve(7) {
					if u := b.Used(); u > 1000 {
						t.Errorf("used %d over the limit", u)
					}
					b.Release(7)
				}
			}
		}()
	}
	wg.Wait()
	if b.Used() != 0 {
		t.Fatalf("Used = %d after every release", b.Used())
	}
}

func TestReleaseMoreThanReservedPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(10).Release(1)
}
