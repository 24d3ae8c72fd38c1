package throttle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// WriteOOMScoreAdj writes adj, in [-1000, 1000], to
// <procRoot>/self/oom_score_adj (procRoot "" means "/proc"). A higher value
// makes the kernel's OOM killer pick this process first, which raising
// needs no privilege for: 1000 sacrifices the agent rather
// than the rest of the device. Lowering it below its current value needs
// CAP_SYS_RESOURCE; a refused write returns an error saying so.
func WriteOOMScoreAdj(procRoot string, adj int) error {
	if adj < -1000 || adj > 1000 {
		return fmt.Errorf("throttle: oom_score_adj = %d: must be in [-1000, 1000]", adj)
	}
	if procRoot == "" {
		procRoot = "/proc"
	}
	path := filepath.Join(procRoot, "self", "oom_score_adj")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(strconv.Itoa(adj) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("throttle: write %s = %d: refused (lowering oom_score_adj needs CAP_SYS_RESOURCE): %w", path, adj, err)
	default:
		return fmt.Errorf("throttle: write %s = %d: %w", path, adj, err)
	}
}
