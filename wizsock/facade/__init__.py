"""The drop-in socket facade's parts; :mod:`wizsock.socket` is the public module.

- :mod:`~wizsock.facade.registry`: which engine module new sockets use (the Handle);
- :mod:`~wizsock.facade.routing`: which connections go over the module;
- :mod:`~wizsock.facade.names`, :mod:`~wizsock.facade.dns_cache`,
  :mod:`~wizsock.facade.resolver`, :mod:`~wizsock.facade.addrinfo`: name resolution;
- :mod:`~wizsock.facade.opening`: opening a link within the socket's timeout;
- :mod:`~wizsock.facade.conn`: a routed socket's connection, shared with its pump;
- :mod:`~wizsock.facade.pair`: the AF_UNIX pair behind a socket;
- :mod:`~wizsock.facade.pumps`: engine-loop tasks joining the pair to a link;
- :mod:`~wizsock.facade.reclaim`: opt-in idle-link reclaim;
- :mod:`~wizsock.facade.relay`: the relay thread, for what stays on the host.
- :mod:`~wizsock.facade.adoption`: the hand-over to a socket built by ssl's or accept's constructor;
- :mod:`~wizsock.facade.seams`: what the facade needs of the engine, as Protocols.
"""
