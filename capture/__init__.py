"""Recording: the eBPF recorder, host snapshots, and the capture writer/reader.

Recording needs root and bcc (the distro's ``python3-bpfcc``); reading a capture
(:mod:`fcap.capture.reader`) needs neither.
"""
