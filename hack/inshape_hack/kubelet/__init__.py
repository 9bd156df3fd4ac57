"""A local kubelet: runs the pods bound to one Node as processes on this machine.

It registers the Node and renews its Lease, binds pending pods to itself (there is no
scheduler), runs each container's command with the pod's env, reports pod status, serves
container logs to kube-apiserver over TLS, and kills processes when their pods go away.
Run it as `python -m inshape_hack.kubelet`; the cluster launcher does.
"""
