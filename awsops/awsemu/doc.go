// Package awsemu is an offline AWS emulator for Vigil's tests and demo. It
// serves the wire protocols aws-sdk-go-v2 speaks — the EC2 Query API, the
// STS Query API, Route 53's REST-XML API and IMDSv2 — over a World loaded
// from YAML, so the real SDK talks to it through its BaseEndpoint setting and
// nothing about the emulator leaks into the product.
//
// Every EC2, STS and Route 53 request must carry a valid SigV4 signature made
// with a credential of the World; the emulator recomputes it. Errors come in
// AWS's own shapes with AWS's codes and messages, so the SDK decodes them
// into the same smithy.APIError values a real deployment sees.
//
// Tests shape the emulator's behaviour with Update (change the World
// atomically), SetFault (latency and errors per action), SetThrottling
// (EC2-like token buckets per credential) and read what happened with Calls.
// ServeDNS answers A queries for the hosted zones' record sets once their
// change is INSYNC, so name-resolution checks run offline too.
package awsemu
