// The Coordinator library: filled by later work (see docs/architecture.md).
