"""End-to-end tests: real OCI clients (skopeo, podman, oras-py, the shared harness) against `make serve`."""
