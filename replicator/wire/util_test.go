package wire

import "hash/crc32"

func crc32Of(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// testHello returns a valid Hello of node n, without a nonce.
func testHello(n uint8) Hello {
	return Hello{
		ConfigHash:  [16]byte{1, 2, 3},
		VolumeUUID:  [16]byte{9, 9, 9},
		Incarnation: 1000 + uint64(n),
		Size:        1 << 30,
		BlockSize:   4096,
		MaxPayload:  MaxPayload,
		Node:        n,
		Role:        RoleSecondary,
		Gens:        Generations{Current: 0x1111, Bitmap: 0, History: [2]uint64{0x2222, 0}},
	}
}
