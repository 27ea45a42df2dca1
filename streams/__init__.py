"""The Faust side: app factory, topics, wire records, agents, machine state and the dead-letter policy.

Never imports :mod:`service`; it declares small protocols that the service layer implements.
"""
