"""What the registry tells other apps about a version it stores.

Monitoring keeps a version's drift reference, and the registry may not import
monitoring (imports point api -> monitoring -> registry): so, rather than
call it, register_version() sends ``reference_sample_given`` and monitoring
connects its receiver in its AppConfig.ready(). It is sent inside the
transaction that stores the version, with ``send`` (not ``send_robust``): a
receiver's error rolls the whole upload back, file included.
"""

from __future__ import annotations

from django.dispatch import Signal

# sender=ModelVersion; version, columns ({feature: values}, in schema order)
# and predictions (the model's on those rows; JSON values, NaN as None; None
# for a multi-output model).
reference_sample_given = Signal()
