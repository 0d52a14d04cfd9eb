"""The streaming upload relay: the upload data plane's second front door (docs/architecture.md).

The app's `POST /v2/<name>/blobs/uploads/` authorises a push and, when a relay is configured
(`REGISTRY_RELAY_URL`), answers with a `Location` on the relay that carries a capability in a path
segment (`core/capability.py`). The relay serves that session URL (`PATCH`, `PUT ?digest=`, `GET`,
`DELETE`) for bodies of any size: it checks the capability, reads the body from the socket as it
arrives and hands it to the upload service, which hashes it and writes it as multipart parts in
bounded memory. Session, digest, link, quota and GC-touch rules stay in `services/uploads.py`.

- `app.py`: the WSGI application (routing, capability check, request body, error envelope);
- `server.py`: the HTTP server it runs under (why this one: see the README);
- `__main__.py`: `python -m chalicelib.relay`, the relay on its own (the AWS container); locally
  `make serve` runs it beside the app in the same process.
"""
