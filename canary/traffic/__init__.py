"""Routers: make the mesh (or HAProxy) hold the traffic split the engine asks for."""
