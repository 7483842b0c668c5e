"""AWS rules: RDS, ElastiCache, EKS and its system node group, S3, ECR and cost-allocation
tags (the GPU pools are Karpenter NodePools: policies/kubernetes/)."""
