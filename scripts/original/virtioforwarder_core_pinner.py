#!/bin/sh
# virtio-forwarder's virtioforwarder_core_pinner.py, as vio4wd runs it: the original's command line,
# output and exit status (no Python needed). Installed at the original's paths,
# /usr/lib/virtio-forwarder/ and /usr/lib64/virtio-forwarder/ (where OpenStack's os-vif runs it).
exec "${VIO4WD:-/usr/bin/vio4wd}" original-tool core_pinner "$@"
