"""Development tools that are not the appliance: the benchmark, the reference peer, the demo clip and music,
the private MPD server, the simulated listener. Imported only by the commands and scripts that need them,
lazily, so no daemon loads them; the demo clip is package data, so they work from an installed package too."""
