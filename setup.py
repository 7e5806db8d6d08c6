from setuptools import find_packages, setup

setup(
    name="torch_wm_backend",
    version="0.1.0",
    description="torch.compile backend: Apache TVM kernels tuned with a world-model cost model",
    packages=find_packages(include=["torch_wm_backend", "torch_wm_backend.*"]),
    package_data={"torch_wm_backend.world_model": ["weights/*.pt", "weights/*.json", "*.cc"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.11,<2.15",
        "apache-tvm==0.27.0.post1",
        "apache-tvm-ffi==0.1.14.post0",  # 0.1.15.x segfaults in MetaSchedule (ToJSONGraph)
        "numpy",
        "filelock",
        "platformdirs",
        "tqdm",
        "cloudpickle",  # MetaSchedule's builder and runner pools
        "psutil",
    ],
    extras_require={
        "test": ["pytest", "transformers>=5", "tornado"],
        "rpc": ["tornado"],  # only where the tracker runs
        "bench": ["matplotlib", "xgboost", "transformers>=5"],
    },
    entry_points={
        "torch_dynamo_backends": ["tvm_wm = torch_wm_backend.backend:tvm_wm"],
        "console_scripts": ["tvm-wm = torch_wm_backend.cli:main"],
    },
)
