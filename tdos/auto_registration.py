"""Registration of the TDOS classes with transformers (Auto classes, the "ood-segmentation" pipeline task), once.

`register()` imports torch, transformers and the model code, so `import tdos` does not call it: the package
registers when one of its public names is first used, or, after a bare `import tdos`, when transformers' Auto
classes or pipelines are imported. The latter is a small import watcher (`register_when_transformers_is_used`):
it follows the imports of `transformers.*` and `tdos.*` modules and registers when the outermost of them has
finished and one of `_TRIGGERS` is loaded (registering inside a half-initialised module, e.g. while
`tdos.configuration_tdos` itself imports transformers, would fail), then removes itself. So importing a submodule
such as `tdos.configuration_tdos` registers as `import tdos` did before the package became lazy, while
`import tdos.evaluation` without transformers loaded registers nothing and imports no torch.
"""

import importlib.abc
import sys
import threading


_TRIGGERS = (
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.image_processing_auto",
    "transformers.pipelines",
)
_WATCHED = ("transformers", __name__.rpartition(".")[0])
_lock = threading.RLock()
_registered = False
_registering = False


def register() -> None:
    """Registers `TDOSConfig`, the model, the image processors and the "ood-segmentation" task; idempotent."""
    global _registered, _registering
    with _lock:
        if _registered or _registering:
            return
        _registering = True
        try:
            from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForSemanticSegmentation
            from transformers.pipelines import PIPELINE_REGISTRY

            from .configuration_tdos import TDOSConfig
            from .image_processing_tdos import TDOSImageProcessor, TDOSImageProcessorPil
            from .modeling_tdos import TDOSForOODSegmentation, TDOSForSemanticSegmentation
            from .pipeline_tdos import OODSegmentationPipeline

            AutoConfig.register(TDOSConfig.model_type, TDOSConfig, exist_ok=True)
            AutoModel.register(TDOSConfig, TDOSForOODSegmentation, exist_ok=True)
            AutoModelForSemanticSegmentation.register(TDOSConfig, TDOSForSemanticSegmentation, exist_ok=True)
            # Saved folders carry `auto_map` and the code, so they load with trust_remote_code=True without tdos.
            TDOSConfig.register_for_auto_class()
            TDOSForOODSegmentation.register_for_auto_class("AutoModel")
            AutoImageProcessor.register(
                TDOSConfig,
                image_processor_classes={"torchvision": TDOSImageProcessor, "pil": TDOSImageProcessorPil},
                exist_ok=True,
            )
            TDOSImageProcessor.register_for_auto_class("AutoImageProcessor")
            if "ood-segmentation" not in PIPELINE_REGISTRY.get_supported_tasks():
                PIPELINE_REGISTRY.register_pipeline(
                    "ood-segmentation", pipeline_class=OODSegmentationPipeline, pt_model=AutoModel
                )
            _registered = True
        finally:
            _registering = False
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _TransformersImportWatcher)]


def register_when_transformers_is_used() -> None:
    """Registers now if transformers' Auto classes or pipelines are loaded, else when they get imported."""
    if any(name in sys.modules for name in _TRIGGERS):
        register()
    elif not _registered and not any(isinstance(finder, _TransformersImportWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TransformersImportWatcher())


class _TransformersImportWatcher(importlib.abc.MetaPathFinder):
    """Finds `transformers.*` and `tdos.*` modules through the other finders and wraps their loaders to see them
    finish."""

    def __init__(self):
        self._local = threading.local()

    def find_spec(self, fullname, path, target=None):
        if not any(fullname == name or fullname.startswith(name + ".") for name in _WATCHED):
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _WatchedLoader(spec.loader, self)
                return spec
        return None

    def run(self, loader, module) -> None:
        """Executes `module` with `loader`; registers once the outermost watched import is done and triggers are in."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            loader.exec_module(module)
        finally:
            self._local.depth = depth
        if depth == 0 and any(name in sys.modules for name in _TRIGGERS):
            register()


class _WatchedLoader(importlib.abc.Loader):
    """A loader that runs the wrapped one through the watcher; every other attribute is the wrapped loader's."""

    def __init__(self, loader, watcher: _TransformersImportWatcher):
        self._loader = loader
        self._watcher = watcher

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._watcher.run(self._loader, module)

    def __getattr__(self, name):
        return getattr(self._loader, name)
