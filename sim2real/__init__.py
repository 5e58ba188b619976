"""sim2real: domain-randomized simulation to robot skills.

Importing this package never imports a simulator; backends load lazily.
"""

__version__ = "0.1.0"
