package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
)

// On-disk layout constants. doc.go describes the layout byte by byte.
const (
	// Magic starts every superblock slot.
	Magic = "VGMDMETA"
	// Version is the metadata format version.
	Version uint32 = 1
	// SlotSize is the size of one superblock slot; two slots precede the
	// bitmap.
	SlotSize = 4096
	// BitmapOffset is where the dirty bitmap starts on the partition.
	BitmapOffset = 2 * SlotSize
	// PageSize is the unit in which bitmap changes are written.
	PageSize = 4096
	// DefaultGranularity is the volume bytes one bitmap bit covers.
	DefaultGranularity = 64 << 10
)

// Superblock flags.
const (
	// FlagConsistent: the data is a complete, consistent image (not a
	// half-done resync target).
	FlagConsistent uint32 = 1 << 0
	// FlagPrimary: the node was primary when the superblock was written.
	FlagPrimary uint32 = 1 << 1
	// FlagDirtyShutdown: the metadata is open; found set on Open, the
	// previous run crashed.
	FlagDirtyShutdown uint32 = 1 << 2
	// FlagResolveDiscard: an operator resolved a split brain by
	// discarding this disk's changes; it becomes the resync target on the
	// next connection. Cleared when that resync ends.
	FlagResolveDiscard uint32 = 1 << 3
	// FlagResolveKeep: an operator resolved a split brain by keeping this
	// disk's changes; it becomes the resync source on the next
	// connection. Cleared when that resync ends.
	FlagResolveKeep uint32 = 1 << 4

	// FlagHelloDirty is never stored: an engine sets it in the disk flags
	// of its handshake Hello when its dirty bitmap has bits set, so that
	// two disks with equal generations still resync the regions a crash
	// may have left different.
	FlagHelloDirty uint32 = 1 << 31
)

// Errors.
var (
	// ErrNoSuperblock reports that neither slot holds a valid superblock.
	ErrNoSuperblock = errors.New("meta: no valid superblock")
	// ErrBadGeometry reports an invalid size, block size or granularity.
	ErrBadGeometry = errors.New("meta: bad geometry")
	// ErrOutOfRange reports a byte range beyond the volume.
	ErrOutOfRange = errors.New("meta: range beyond volume")
)

// Superblock is the metadata record of one mirror disk.
type Superblock struct {
	VolumeUUID  [16]byte
	Size        uint64 // data bytes
	BlockSize   uint32 // bytes, a power of two in [512, 65536]
	Granularity uint32 // bytes per bitmap bit, a power of two >= BlockSize
	Role        uint8  // 0 secondary, 1 primary
	Flags       uint32
	Gens        Generations
	// Seq counts superblock writes; the slot with the highest valid Seq
	// wins. Store sets it.
	Seq uint64
}

func (sb *Superblock) bits() uint64 {
	return (sb.Size + uint64(sb.Granularity) - 1) / uint64(sb.Granularity)
}

func (sb *Superblock) bitmapBytes() uint64 {
	n := (sb.bits() + 7) / 8
	return (n + PageSize - 1) / PageSize * PageSize
}

func (sb *Superblock) validate() error {
	switch {
	case sb.BlockSize < 512 || sb.BlockSize > 65536 || sb.BlockSize&(sb.BlockSize-1) != 0:
		return fmt.Errorf("%w: block size %d", ErrBadGeometry, sb.BlockSize)
	case sb.Granularity < sb.BlockSize || sb.Granularity&(sb.Granularity-1) != 0:
		return fmt.Errorf("%w: granularity %d", ErrBadGeometry, sb.Granularity)
	case sb.Size == 0 || sb.Size%uint64(sb.BlockSize) != 0 || sb.Size > 1<<60:
		return fmt.Errorf("%w: size %d", ErrBadGeometry, sb.Size)
	}
	return nil
}

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func (sb *Superblock) marshal(b []byte) {
	clear(b[:SlotSize])
	copy(b[0:], Magic)
	le.PutUint32(b[8:], Version)
	le.PutUint32(b[12:], sb.Flags)
	le.PutUint64(b[16:], sb.Seq)
	copy(b[24:], sb.VolumeUUID[:])
	le.PutUint64(b[40:], sb.Size)
	le.PutUint32(b[48:], sb.BlockSize)
	le.PutUint32(b[52:], sb.Granularity)
	b[56] = sb.Role
	le.PutUint64(b[64:], sb.Gens.Current)
	le.PutUint64(b[72:], sb.Gens.Bitmap)
	le.PutUint64(b[80:], sb.Gens.History[0])
	le.PutUint64(b[88:], sb.Gens.History[1])
	le.PutUint64(b[96:], BitmapOffset)
	le.PutUint64(b[104:], sb.bitmapBytes())
	le.PutUint32(b[112:], crc32.Checksum(b[:112], castagnoli))
}

func unmarshal(b []byte) (Superblock, bool) {
	if string(b[0:8]) != Magic || le.Uint32(b[8:]) != Version ||
		crc32.Checksum(b[:112], castagnoli) != le.Uint32(b[112:]) {
		return Superblock{}, false
	}
	sb := Superblock{
		Flags: le.Uint32(b[12:]), Seq: le.Uint64(b[16:]),
		Size: le.Uint64(b[40:]), BlockSize: le.Uint32(b[48:]), Granularity: le.Uint32(b[52:]), Role: b[56],
		Gens: Generations{Current: le.Uint64(b[64:]), Bitmap: le.Uint64(b[72:]),
			History: [2]uint64{le.Uint64(b[80:]), le.Uint64(b[88:])}},
	}
	copy(sb.VolumeUUID[:], b[24:])
	if sb.validate() != nil || le.Uint64(b[96:]) != BitmapOffset || le.Uint64(b[104:]) != sb.bitmapBytes() {
		return Superblock{}, false
	}
	return sb, true
}

// Store is the metadata of one mirror disk on the cluster partition: the
// superblock (two slots) and the dirty bitmap. Its methods are safe for
// concurrent use.
type Store struct {
	f      *os.File
	mu     sync.Mutex // superblock
	sb     Superblock
	bitmap *Bitmap
	// crashed is set when Open found FlagDirtyShutdown: the previous run
	// did not Close cleanly.
	crashed bool
}

// Create initialises metadata on the partition (or file) at path for the
// geometry in sb, with an all-clear bitmap, and opens it. A zero
// Granularity means DefaultGranularity.
func Create(path string, sb Superblock) (*Store, error) {
	if sb.Granularity == 0 {
		sb.Granularity = DefaultGranularity
	}
	if err := sb.validate(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("meta create: %w", err)
	}
	zero := make([]byte, BitmapOffset+sb.bitmapBytes())
	if _, err := f.WriteAt(zero, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("meta create: %w", err)
	}
	s := &Store{f: f}
	sb.Seq = 0
	if err := s.WriteSuperblock(sb); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	return Open(path)
}

// Open reads the metadata at path, loads the bitmap, and marks the
// superblock FlagDirtyShutdown until Close.
func Open(path string) (*Store, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("meta open: %w", err)
	}
	buf := make([]byte, BitmapOffset)
	if _, err := f.ReadAt(buf, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("meta read superblock: %w", err)
	}
	a, okA := unmarshal(buf[:SlotSize])
	b, okB := unmarshal(buf[SlotSize:])
	var sb Superblock
	switch {
	case okA && (!okB || a.Seq > b.Seq):
		sb = a
	case okB:
		sb = b
	default:
		f.Close()
		return nil, ErrNoSuperblock
	}
	bm, err := loadBitmap(f, sb.bits(), sb.Granularity, sb.Size)
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &Store{f: f, sb: sb, bitmap: bm, crashed: sb.Flags&FlagDirtyShutdown != 0}
	sb.Flags |= FlagDirtyShutdown
	if err := s.WriteSuperblock(sb); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// Crashed reports whether the previous run ended without Close.
func (s *Store) Crashed() bool { return s.crashed }

// Superblock returns the current superblock.
func (s *Store) Superblock() Superblock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sb
}

// Bitmap returns the dirty bitmap.
func (s *Store) Bitmap() *Bitmap { return s.bitmap }

// WriteSuperblock durably replaces the superblock (geometry fields must
// not change). It writes the slot not holding the current one, with the
// next sequence number, and fsyncs: a torn write leaves the previous
// superblock valid in the other slot.
func (s *Store) WriteSuperblock(sb Superblock) error {
	if err := sb.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sb.Seq = s.sb.Seq + 1
	buf := make([]byte, SlotSize)
	sb.marshal(buf)
	if _, err := s.f.WriteAt(buf, int64(sb.Seq%2)*SlotSize); err != nil {
		return fmt.Errorf("meta write superblock: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("meta sync superblock: %w", err)
	}
	s.sb = sb
	return nil
}

// Close writes back the bitmap, clears FlagDirtyShutdown and closes the
// partition.
func (s *Store) Close() error {
	err := s.bitmap.WriteBack()
	if err == nil {
		sb := s.Superblock()
		sb.Flags &^= FlagDirtyShutdown
		err = s.WriteSuperblock(sb)
	}
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("meta close: %w", cerr)
	}
	return err
}
