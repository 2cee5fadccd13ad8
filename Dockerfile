# The backend image. Label Studio runs from its own image (see docker-compose.yml).
FROM python:3.11-slim

WORKDIR /app
# torch first, from the CPU index: the default wheel pulls several GB of CUDA.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY ml_backend ml_backend
COPY scripts scripts
COPY label_config.xml .

ENV MODEL_DIR=/data/model_dir \
    HF_HOME=/data/huggingface \
    HOST=0.0.0.0 \
    PORT=9090
EXPOSE 9090
CMD ["python", "-m", "ml_backend.service"]
