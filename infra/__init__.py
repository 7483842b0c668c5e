"""The aiinfra Pulumi program: EKS with GPU node pools, Postgres, Redis, Prometheus, serving."""
