"""eBPF C sources of the recorder (data files: recorder.c, fcap_event.h)."""
