"""The knowledge-base admin: add content (files of every kind, a text) with progress, edit
and delete items (the search follows), bills, and the search test per mode — in zh-hans."""

from __future__ import annotations

import io

import docx
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from knowledge.models import Collection, DataItem
from knowledge.selectors import knowledge_base_config_get
from knowledge.services import knowledge_search, run_now
from tests.conftest import wait_until


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose page shows `text` (ASCII), written by hand."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def docx_bytes(*paragraphs: str) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def admin_client(transactional_db) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


def test_files_and_a_text_are_split_imported_with_progress_and_searchable(admin_client, make_kb):
    kb = make_kb(embeddings=False, chunk_size=60, chunk_overlap=0)
    files = [
        SimpleUploadedFile(
            "handbook.txt", "第一段：员工年假按工龄计算。\n\n第二段：加班工资按倍数计算。".encode()
        ),
        SimpleUploadedFile("faq.csv", b"q,a\nWhere is the office?,In Shanghai.\n"),
        SimpleUploadedFile("faq.jsonl", b'{"q": "Who pays lunch?", "a": "The company."}\n'),
        SimpleUploadedFile("rules.pdf", minimal_pdf("Visitors must sign in at the front desk.")),
        SimpleUploadedFile("policy.docx", docx_bytes("Laptops are replaced every three years.")),
    ]
    response = admin_client.post(
        reverse("admin:knowledge_knowledgebase_add_content", args=[kb.pk]),
        {"files": files, "text": "Parking is free for employees.", "text_name": "parking"},
    )
    assert response.status_code == 302
    wait_until(lambda: not Collection.objects.exclude(status="done").exists(), timeout=20)
    collections = {c.name: c for c in Collection.objects.filter(knowledge_base=kb)}
    assert set(collections) == {
        "handbook.txt",
        "faq.csv",
        "faq.jsonl",
        "rules.pdf",
        "policy.docx",
        "parking",
    }
    assert all(c.chunks_done == c.chunks_total > 0 for c in collections.values())
    assert DataItem.objects.get(q="Where is the office?").a == "In Shanghai."
    assert DataItem.objects.filter(q__contains="front desk", collection__name="rules.pdf").exists()
    assert DataItem.objects.filter(q__contains="three years", collection__kind="file").exists()

    listing = admin_client.get(reverse("admin:knowledge_collection_changelist")).content.decode()
    assert "<progress" in listing and "handbook.txt" in listing

    page = admin_client.post(
        reverse("admin:knowledge_knowledgebase_search_test", args=[kb.pk]),
        {"text": "laptop replacement", "limit": 3, "modes": ["fullTextRecall", "embedding"]},
    ).content.decode()
    assert "three years" in page and "此知识库没有向量模型" in page


def test_editing_and_deleting_items_changes_what_search_finds(admin_client, make_kb):
    kb = make_kb()
    item = DataItem.objects.create(knowledge_base=kb, q="old text", content_hash="x")
    admin_client.post(
        reverse("admin:knowledge_dataitem_change", args=[item.pk]),
        {"q": "Submarines dive deep", "a": "", "source": "", "indexes": "[]"},
    )
    config = knowledge_base_config_get(kb.pk)
    found = run_now(knowledge_search, config, "submarine", mode="embedding", limit=1)
    assert found.quotes[0].q == "Submarines dive deep"
    admin_client.post(reverse("admin:knowledge_dataitem_delete", args=[item.pk]), {"post": "yes"})
    config = knowledge_base_config_get(kb.pk)
    assert run_now(knowledge_search, config, "submarine", mode="fullTextRecall").quotes == []


def test_the_admin_pages_render_in_chinese_with_add(admin_client, kb):
    changelist = admin_client.get(
        reverse("admin:knowledge_knowledgebase_changelist")
    ).content.decode()
    assert "知识库" in changelist and "新增" in changelist
    change = admin_client.get(
        reverse("admin:knowledge_knowledgebase_change", args=[kb.pk])
    ).content.decode()
    assert "新增内容" in change and "搜索测试" in change
    assert admin_client.get(reverse("admin:knowledge_trainingbill_changelist")).status_code == 200
