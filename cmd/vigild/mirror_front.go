package main

import (
	"fmt"
	"log/slog"

	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/replicator/mirror"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// mirrorFrontend picks a disk's frontend: nbd, none, or for auto nbd when
// the kernel has it.
func mirrorFrontend(kind, cluster, server string, log *slog.Logger) (mirror.Frontend, error) {
	switch kind {
	case config.FrontendNone:
		return nil, nil
	case config.FrontendNBD:
		if err := mirror.NBDAvailable(); err != nil {
			return nil, fmt.Errorf("frontend nbd: %w", err)
		}
		return mirror.NBD{Cluster: cluster, Server: server}, nil
	default:
		if err := mirror.NBDAvailable(); err != nil {
			log.Warn("mirror disk frontend auto: no nbd driver; the disk is replicated but not exposed", "event", "mirror_no_frontend", "err", err)
			return nil, nil
		}
		return mirror.NBD{Cluster: cluster, Server: server}, nil
	}
}

// mirrorTLS loads a disk's TLS files.
func mirrorTLS(t *config.MirrorTLS) (*mirror.TLSConfigs, error) {
	client, server, err := wire.LoadTLS(wire.TLSFiles{Cert: t.Cert, Key: t.Key, CA: t.CA})
	if err != nil {
		return nil, err
	}
	return &mirror.TLSConfigs{Client: client, Server: server}, nil
}
