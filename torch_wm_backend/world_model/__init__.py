"""World-model cost model: ranks MetaSchedule candidates by rolling their trace through latent dynamics."""
from .adapter import WorldModelCostModel, create_cost_model

__all__ = ["WorldModelCostModel", "create_cost_model"]
