// A static Go program with goroutines, maps, sleeps and an exit status: run natively and
// inside kvmserver by tests/e2e/test_languages.py, which compares the two.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	var wg sync.WaitGroup
	results := make([]int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := 0
			for j := 0; j < 100000; j++ {
				s += j % (i + 1)
			}
			results[i] = s
		}(i)
	}
	wg.Wait()
	m := map[string]int{"b": 2, "a": 1, "c": 3}
	keys := []string{}
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	start := time.Now()
	time.Sleep(5 * time.Millisecond)
	fmt.Println(results, strings.Join(keys, ","), time.Since(start) >= 5*time.Millisecond, len(os.Args))
	os.Exit(3)
}
