"""Image modalities: ``object`` (classifier probabilities) and ``scene`` (scene-parsing areas).

Per post, an image model gives a class distribution ``p_post`` [C]; per account the posts
are pooled (docs/method.md section 6)::

    published:  v_a = softmax( sum_posts  p_post * [p_post > threshold] )     (threshold 0.1)
    mean:       v_a = mean_posts p_post
    max:        v_a = max_posts  p_post  (element-wise)

* **object** (:class:`ObjectStage`): any timm classifier by name (default ``resnet101``,
  1,000 ImageNet classes); ``p_post = softmax(logits)``.
* **scene** (:class:`SceneStage`): a UperNet scene parser from ``transformers``
  (``UperNetForSemanticSegmentation``, ResNet-50 backbone by default, 365 classes as in the
  published Places scene head). ``p_post`` is the image's class-area distribution, computed
  at the decode head's own resolution (1/4 of the input) **before any upsampling**: the
  mean over decoder pixels of the per-pixel softmax (``area: soft``) or the share of
  pixels whose arg-max is each class (``area: hard``). The published UPerNet also had an
  image-level scene head that ``transformers`` does not implement; area pooling is the
  stand-in.

Weights come from a local file or folder named in config (``weights``): a timm checkpoint
file for object, a ``save_pretrained`` folder for scene. With ``weights: null`` a
random-initialised model is used (nothing is ever downloaded) and both the run log and
the manifest note say so in plain words.

Throughput: batched inference under ``torch.inference_mode``; files are read (and on CPU
decoded and resized) in DataLoader worker processes; on CUDA the JPEG bytes are decoded
on the GPU (``torchvision.io.decode_jpeg(device="cuda")``) and resized there, the model
runs under bf16 autocast; channels-last memory format everywhere (also on CPU, where
oneDNN convolutions are several times faster in it). Missing or undecodable images are skipped and
counted (``skipped`` in the manifest), never fatal; an account with no usable image has
``present = False`` and a zero row.

The stages run as Lightning predict loops (:class:`ImageShards` picks a process's images,
:class:`ImagePredictor` encodes them, :class:`ShardAccumulator` pools them): one shard per
``shard_size`` accounts is written under the work folder as soon as it is complete, shards
are spread over every device and node of the extraction Trainer
(:mod:`bamir.features.extraction`), global rank zero merges them, and a rerun after a kill
resumes from the finished shards.
"""

from bamir.features.image.stage import ImageStage, ObjectStage, SceneStage

__all__ = ["ImageStage", "ObjectStage", "SceneStage"]
