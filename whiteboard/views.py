from django.http import JsonResponse
from django.shortcuts import render

from .models import Board


def home(request):
    boards = Board.objects.filter(is_public=True).order_by("-changed_at")[:50]
    return render(request, "whiteboard/home.html", {"boards": boards})


def healthz(request):
    return JsonResponse({"status": "ok"})
