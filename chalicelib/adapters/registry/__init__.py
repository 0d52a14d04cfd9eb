"""Remote registries (replication peers and proxy-cache upstreams): a generic OCI distribution
client (`client.py`) and one small adapter per registry type (`catalog.py` lists them). Every call
goes through the egress policy (`adapters/egress.py`); every failure is a typed `RemoteError`."""
