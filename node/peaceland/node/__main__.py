"""``python -m peaceland.node``: the node loop, configured by its environment."""

from peaceland.node.kubelet import main

main()
