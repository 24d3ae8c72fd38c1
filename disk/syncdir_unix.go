//go:build !windows

package disk

import "os"

// SyncDir makes the creation, removal or renaming of files in dir durable
// by syncing the directory, as a rename-into-place must be followed by.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
