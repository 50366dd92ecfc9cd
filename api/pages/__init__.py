"""The pages people read: the landing page, each model's page and the
how-to-call panel the admin shows too."""
