"""Boards: the RPC tracker client, the virtual aarch64 board, TVM's OpenCL runtime, remote artifacts."""
