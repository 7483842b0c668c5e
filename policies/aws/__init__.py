"""AWS rules: RDS, ElastiCache, EKS, node groups, S3, ECR and cost-allocation tags."""
