// Package netem holds the VM suite "netem": two vigild nodes in network
// namespaces joined by a link with netem's delay and loss, like two
// Availability Zones, must not fail over. The host kernel has no
// sch_netem, so the test is built only with the tag vmtest, which the VM
// harness sets (make vmtest); inside the VM a missing sch_netem fails it.
package netem
