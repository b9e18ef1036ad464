// Package netem holds the VM suite "netem": two vigild nodes in network
// namespaces joined by a link with netem's delay and loss, like two
// Availability Zones, must not fail over. The host kernel has no
// sch_netem, so the test skips there, saying so; inside the VM (make
// vmtest) a missing sch_netem fails it.
package netem
