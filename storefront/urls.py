from django.urls import path

from storefront.api import api

urlpatterns = [path("", api.urls)]
