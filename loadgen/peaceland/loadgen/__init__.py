"""The load generator: a synthetic drone fleet, drivers that send its reports into a force at
a target rate, and the checks that compare what the platform made of them with the fleet's
ground truth.

It depends on the data contract (``peaceland.tenants``) only: it reaches a force the way
drones and officers do, through the gateway and the topics, never through a service's code.
"""
