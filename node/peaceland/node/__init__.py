"""The local node: what a cluster's kubelet and Deployment controller do, on this machine.

``kubelet`` runs the Deployments the operator renders as processes; ``launch`` starts a
force's gateway, archiver and alerter (or the operator) as processes configured the way
their pods are; ``platform`` puts the CRDs, the operator and the node on the local stack's
API server so that a force is made the way a user makes one, by applying a PoliceForce.
Nothing here runs in production: it exists because our machines have no container runtime.
"""
