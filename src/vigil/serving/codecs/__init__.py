"""Protocol adapters: each decodes its bodies into raw tables for the data plane and encodes
:class:`~vigil.serving.dataplane.Prediction` back; none holds serving logic of its own."""
