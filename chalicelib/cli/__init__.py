"""`python -m chalicelib.cli push SRC DEST`: copy an image into the registry in capped chunks.

A client-side tool for the $0-idle deployment, where API Gateway and Lambda refuse request bodies
above ~4 MB and stock clients push each layer in one request. It uploads every blob in PATCH
chunks no larger than the registry's `OCI-Chunk-Max-Length`, resumes a session after a failed
chunk, mounts blobs the target already holds, and pushes several layers at once.

Nothing in the Lambda app imports this package: it needs `requests` and `rich`
(requirements-cli.txt), which the Lambda zip does not carry.
"""
