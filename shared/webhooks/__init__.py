"""Webhooks: a team's endpoints hear about its jobs and studies finishing, signed and retried.

`service` holds the rules (endpoints, subscriptions, what an event delivers), `events` what each
event says, `signing` the signature header, `delivery` one attempt over HTTP and what follows it.
"""
