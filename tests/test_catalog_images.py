"""Thumbnails are made after the upload commits; files leave storage only after the commit."""

import errno
import io
import time

import pytest
from celery.exceptions import Retry
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.forms import modelform_factory
from django.utils import timezone
from model_bakery import baker
from PIL import Image, UnidentifiedImageError

from catalog.models import Product, ProductImage
from catalog.services import product_image_thumbnail_make
from catalog.tasks import thumbnail_make
from outbox.models import OutboxMessage


class Rollback(Exception):
    pass


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _png(size=(800, 600), color=(200, 30, 30)) -> ContentFile:
    output = io.BytesIO()
    Image.new("RGB", size, color).save(output, format="PNG")
    return ContentFile(output.getvalue(), name="photo.png")


def _deleted_files(callbacks) -> list[str]:
    """The file names whose deletion `callbacks` scheduled (other apps' callbacks aside)."""
    return sorted(
        callback.args[0]
        for callback in callbacks
        if getattr(callback, "func", None) == default_storage.delete
    )


def _thumbnail_requests() -> list[tuple[str, dict]]:
    return list(OutboxMessage.objects.order_by("created_at").values_list("task_name", "kwargs"))


def _upload(product: Product) -> ProductImage:
    image = ProductImage(product=product)
    image.image.save("photo.png", _png(), save=False)
    image.save()
    return image


@pytest.mark.django_db
def test_a_committed_upload_gets_its_thumbnail_exactly_once(django_capture_on_commit_callbacks):
    # given
    product = baker.make(Product)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        image = _upload(product)

    # then one thumbnail request, whose task made a 320 px thumbnail, and nothing deleted
    assert _thumbnail_requests() == [("catalog.thumbnail_make", {"image_id": image.pk})]
    assert _deleted_files(callbacks) == []
    image.refresh_from_db()
    assert image.thumbnail.name.startswith("products/thumbnails/photo")
    with image.thumbnail.open("rb") as thumbnail, Image.open(thumbnail) as picture:
        assert picture.size == (320, 240)


@pytest.mark.django_db
def test_a_rolled_back_upload_requests_no_thumbnail(django_capture_on_commit_callbacks):
    # given
    product = baker.make(Product)

    # when
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        _upload(product)
        raise Rollback

    # then
    assert callbacks == []
    assert OutboxMessage.objects.count() == 0
    assert not default_storage.exists("products/thumbnails")


@pytest.mark.django_db
def test_making_a_thumbnail_twice_makes_one(django_capture_on_commit_callbacks):
    # given an image whose thumbnail was made on commit
    with django_capture_on_commit_callbacks(execute=True):
        image = _upload(baker.make(Product))
    image.refresh_from_db()
    first = image.thumbnail.name

    # when the task is delivered again
    made = product_image_thumbnail_make(image_id=image.pk)

    # then
    image.refresh_from_db()
    assert made is False
    assert image.thumbnail.name == first
    assert default_storage.listdir("products/thumbnails")[1] == [first.rsplit("/", 1)[1]]


@pytest.mark.django_db
def test_a_rolled_back_delete_keeps_the_files(django_capture_on_commit_callbacks):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        image = _upload(baker.make(Product))
    image.refresh_from_db()
    names = [image.image.name, image.thumbnail.name]

    # when
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        image.delete()
        raise Rollback

    # then
    assert callbacks == []
    assert [default_storage.exists(name) for name in names] == [True, True]
    assert ProductImage.objects.count() == 1


@pytest.mark.django_db
def test_a_committed_delete_removes_both_files_once(django_capture_on_commit_callbacks):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        image = _upload(baker.make(Product))
    image.refresh_from_db()
    names = [image.image.name, image.thumbnail.name]

    # when the product goes, and its image with it
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        image.product.delete()

    # then
    assert _deleted_files(callbacks) == sorted(names)
    assert [default_storage.exists(name) for name in names] == [False, False]


@pytest.mark.django_db
def test_a_replaced_file_is_deleted_on_commit_and_the_new_one_thumbnailed(
    django_capture_on_commit_callbacks,
):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        image = _upload(baker.make(Product))
    image.refresh_from_db()
    old_names = [image.image.name, image.thumbnail.name]

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        image.image.save("other.png", _png(size=(100, 400)), save=False)
        image.save()

    # then the old image and its thumbnail are gone and the new image has its own thumbnail
    assert _deleted_files(callbacks) == sorted(old_names)
    assert _thumbnail_requests()[1] == ("catalog.thumbnail_make", {"image_id": image.pk})
    assert [default_storage.exists(name) for name in old_names] == [False, False]
    image.refresh_from_db()
    assert image.thumbnail.name.startswith("products/thumbnails/other")
    with image.thumbnail.open("rb") as thumbnail, Image.open(thumbnail) as picture:
        assert picture.size == (80, 320)


@pytest.mark.django_db
def test_a_rolled_back_replacement_keeps_the_old_file(django_capture_on_commit_callbacks):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        image = _upload(baker.make(Product))
    image.refresh_from_db()
    old_name = image.image.name

    # when
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        image.image.save("other.png", _png(), save=False)
        image.save()
        raise Rollback

    # then
    assert callbacks == []
    assert default_storage.exists(old_name)
    assert ProductImage.objects.get().image.name == old_name
    assert len(_thumbnail_requests()) == 1  # only the first upload's


@pytest.mark.django_db
def test_loading_a_fixture_requests_no_thumbnail(django_capture_on_commit_callbacks):
    # given
    product = baker.make(Product)

    # when a raw save, as loaddata does
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ProductImage(
            product=product,
            image="products/existing.png",
            created_at=timezone.now(),
            updated_at=timezone.now(),
        ).save_base(raw=True)

    # then
    assert callbacks == []
    assert OutboxMessage.objects.count() == 0


@pytest.mark.worker
def test_a_real_worker_makes_the_thumbnail_of_a_committed_upload(celery_worker, media_root):
    # given the worker stores files where this test does
    assert celery_worker["MEDIA_ROOT"] == str(media_root)
    product = baker.make(Product)

    # when an upload commits
    with transaction.atomic():
        image = _upload(product)

    # then the worker, fed through the outbox and the broker, attaches a thumbnail
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ProductImage.objects.get(pk=image.pk).thumbnail:
        time.sleep(0.2)
    image.refresh_from_db()
    assert image.thumbnail.name.startswith("products/thumbnails/photo")
    assert default_storage.exists(image.thumbnail.name)
    assert OutboxMessage.objects.get().published_at is not None


@pytest.mark.django_db
def test_a_thumbnail_rides_out_a_full_disk_but_not_a_file_that_is_not_an_image(monkeypatch):
    # given an uploaded image, and a disk that is full for a moment
    image = _upload(baker.make(Product))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", disk_full)

    # when / then: the task asks to run again
    with pytest.raises(Retry):
        thumbnail_make.apply(kwargs={"image_id": image.pk})
    monkeypatch.undo()

    # given a file that is no image
    broken = _upload(baker.make(Product))
    with default_storage.open(broken.image.name, "wb") as file:
        file.write(b"not a picture")

    # when / then: waiting will not help, so it fails at once (kept as a TaskFailure)
    with pytest.raises(UnidentifiedImageError):
        thumbnail_make.apply(kwargs={"image_id": broken.pk})


def _phone_photo(size=(400, 200), orientation=6) -> ContentFile:
    """A JPEG stored landscape with the EXIF flag that says: show me turned 90°, as phones do."""
    picture = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    output = io.BytesIO()
    picture.save(output, format="JPEG", exif=exif.tobytes())
    return ContentFile(output.getvalue(), name="phone.jpg")


@pytest.mark.django_db
def test_the_thumbnail_of_a_phone_photo_stands_upright_like_the_original(
    django_capture_on_commit_callbacks,
):
    # given / when
    with django_capture_on_commit_callbacks(execute=True):
        image = ProductImage(product=baker.make(Product))
        image.image.save("phone.jpg", _phone_photo(), save=False)
        image.save()

    # then
    image.refresh_from_db()
    with image.thumbnail.open("rb") as thumbnail, Image.open(thumbnail) as picture:
        assert picture.size == (160, 320)


@pytest.mark.django_db
# Django's form field opens the upload with Pillow, which warns of its size first.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_beyond_the_pixel_limit_is_refused_with_its_size(settings):
    # given: a few hundred kB of PNG that decodes to 144 megapixels
    output = io.BytesIO()
    Image.new("1", (12_000, 12_000), 0).save(output, format="PNG")
    assert len(output.getvalue()) < 2_000_000
    form_class = modelform_factory(ProductImage, fields=("image", "alt_text", "position"))

    # when
    form = form_class(
        data={"alt_text": "", "position": 0},
        files={"image": SimpleUploadedFile("scan.png", output.getvalue(), "image/png")},
        instance=ProductImage(product=baker.make(Product)),
    )

    # then
    assert not form.is_valid()
    assert "12000 x 12000 pixels" in form.errors["image"][0]


@pytest.mark.django_db
def test_a_thumbnail_of_a_decompression_bomb_fails_without_decoding_it(settings):
    # given: such a picture stored anyway (before the limit, or not through a form)
    output = io.BytesIO()
    Image.new("1", (12_000, 12_000), 0).save(output, format="PNG")
    image = ProductImage(product=baker.make(Product))
    image.image.save("scan.png", ContentFile(output.getvalue()), save=False)
    image.save()

    # when / then: refused as Pillow's bomb, not decoded, and not retried (no OSError)
    with pytest.raises(Image.DecompressionBombWarning):
        product_image_thumbnail_make(image_id=image.pk)
