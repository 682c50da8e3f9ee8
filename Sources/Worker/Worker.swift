// The Worker library: filled by later work (see docs/architecture.md).
