package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
)

// MinKeyLen is the shortest cluster key accepted, in bytes.
const MinKeyLen = 32

// Size limits of the files Load reads.
const (
	maxConfigSize = 4 << 20
	maxKeySize    = 64 << 10
)

// Load reads, decodes and validates the configuration file at path, then
// reads the cluster key from Cluster.KeyFile, relative to path's folder
// unless absolute. Problems with the file's contents or the key come back
// as an ErrorList.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("load config: %s is larger than %d bytes", path, maxConfigSize)
	}
	c, d, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	keyPath := c.Cluster.KeyFile
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(filepath.Dir(path), keyPath)
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, ErrorList{{File: path, Line: d.line("cluster.key_file"), Path: "cluster.key_file", Msg: err.Error()}}
	}
	c.Key = key
	return c, nil
}

// readKey reads the cluster key: a regular file of at least MinKeyLen bytes,
// used as it is (a final newline is part of the key), not writable by group
// or others. Mode 0600 is recommended; a group- or world-readable key is
// accepted because git does not keep read permissions.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("key file %s is writable by others (mode %04o): chmod 600 %s", path, perm, path)
	}
	key, err := io.ReadAll(io.LimitReader(f, maxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	switch {
	case len(key) > maxKeySize:
		return nil, fmt.Errorf("key file %s is larger than %d bytes", path, maxKeySize)
	case len(key) < MinKeyLen:
		return nil, fmt.Errorf("key file %s is too short (%d bytes, need at least %d)", path, len(key), MinKeyLen)
	}
	return key, nil
}

// Parse decodes and validates a configuration from data; path only names
// the file in errors and is stored in Config.Path. Parse does not read the
// key file, so Config.Key is nil. Every problem found comes back at once as
// an ErrorList sorted by line.
func Parse(path string, data []byte) (*Config, error) {
	c, _, err := parse(path, data)
	return c, err
}

// parse is Parse, also returning the decoder, which knows the lines.
func parse(path string, data []byte) (*Config, *decoder, error) {
	d := newDecoder(path)
	root := d.parseYAML(data)
	if root == nil {
		return nil, d, d.errs.sorted()
	}
	c := &Config{}
	d.value(root, "", reflect.ValueOf(c).Elem())
	if d.aborted || d.bad[""] {
		return nil, d, d.errs.sorted()
	}
	d.applyDefaults(c)
	d.applyOverrides()
	d.validate(c)
	if len(d.errs) > 0 {
		return nil, d, d.errs.sorted()
	}
	c.Path = path
	sum, err := hash(c)
	if err != nil {
		return nil, d, fmt.Errorf("%s: %w", path, err)
	}
	c.Hash = sum
	return c, d, nil
}
