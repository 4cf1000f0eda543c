// Phone photos weigh 3 to 12 MB each, and a group post or a camp check-in takes up to 9:
// together they pass the server's cap on one request (MAX_UPLOAD_MB), which refuses the
// whole request, text and all. So on a form marked `data-shrink`, the pictures chosen in
// its image file inputs (input[type=file][accept^=image]) are made smaller in the browser
// when the form is sent: at most MAX_SIDE pixels on the longer side, as JPEG. The server
// still checks and re-encodes every picture (app.images); this only keeps the request
// under the cap. Where the browser cannot do it (no DataTransfer, no canvas.toBlob) or a
// picture cannot be read, the files go as they were chosen.
(function () {
  "use strict";
  var MAX_SIDE = 2048; // what the server keeps at most (app.images)
  var QUALITY = 0.85;
  var LIGHT = 1024 * 1024; // a picture this light and no larger than MAX_SIDE goes as it is

  if (typeof DataTransfer === "undefined" || typeof File === "undefined") return;
  if (!HTMLCanvasElement.prototype.toBlob) return;
  try {
    new DataTransfer(); // older Safari has the name but no constructor
  } catch (error) {
    return;
  }

  // The picture, decoded with its EXIF orientation applied. Not through a blob: URL, which
  // the Content-Security-Policy (img-src 'self' data:) refuses.
  function load(file) {
    if (window.createImageBitmap) {
      return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
        return { source: bitmap, width: bitmap.width, height: bitmap.height };
      }, function () {
        return loadAsDataUrl(file);
      });
    }
    return loadAsDataUrl(file);
  }

  function loadAsDataUrl(file) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onerror = reject;
      reader.onload = function () {
        var picture = new Image();
        picture.onload = function () {
          resolve({ source: picture, width: picture.naturalWidth, height: picture.naturalHeight });
        };
        picture.onerror = reject;
        picture.src = reader.result;
      };
      reader.readAsDataURL(file);
    });
  }

  function shrink(file) {
    if (!/^image\//.test(file.type) || file.type === "image/gif") return Promise.resolve(file);
    return load(file)
      .then(function (picture) {
        var width = picture.width;
        var height = picture.height;
        var scale = Math.min(1, MAX_SIDE / Math.max(width, height));
        if (scale === 1 && file.size <= LIGHT) {
          if (picture.source.close) picture.source.close();
          return file;
        }
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(width * scale));
        canvas.height = Math.max(1, Math.round(height * scale));
        var context = canvas.getContext("2d");
        context.fillStyle = "#fff"; // a transparent PNG turns white, not black, as JPEG
        context.fillRect(0, 0, canvas.width, canvas.height);
        context.drawImage(picture.source, 0, 0, canvas.width, canvas.height);
        if (picture.source.close) picture.source.close(); // an ImageBitmap's memory, now
        return new Promise(function (resolve) {
          canvas.toBlob(
            function (blob) {
              if (!blob || blob.size >= file.size) {
                resolve(file);
                return;
              }
              var name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
              resolve(new File([blob], name, { type: "image/jpeg", lastModified: Date.now() }));
            },
            "image/jpeg",
            QUALITY
          );
        });
      })
      .catch(function () {
        return file; // the server says what is wrong with it
      });
  }

  // One after the other: nine decoded 12-megapixel photos at once exhaust a phone.
  function shrinkAll(files) {
    var smaller = [];
    return files
      .reduce(function (previous, file) {
        return previous.then(function () {
          return shrink(file).then(function (result) {
            smaller.push(result);
          });
        });
      }, Promise.resolve())
      .then(function () {
        return smaller;
      });
  }

  function replaceFiles(input) {
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.length) return Promise.resolve();
    return shrinkAll(files).then(function (smaller) {
      var transfer = new DataTransfer();
      smaller.forEach(function (file) {
        transfer.items.add(file);
      });
      input.files = transfer.files; // fires no "change": the form stays "done"
    });
  }

  var forms = document.querySelectorAll("form[data-shrink]");
  Array.prototype.forEach.call(forms, function (form) {
    var inputs = form.querySelectorAll('input[type=file][accept^="image"]');
    if (!inputs.length) return;
    var done = false; // the chosen pictures are made smaller already
    var busy = false;
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener("change", function () {
        done = false;
      });
    });
    form.addEventListener("submit", function (event) {
      if (done) return;
      event.preventDefault();
      if (busy) return; // a second tap while the pictures are being made smaller
      busy = true;
      form.setAttribute("aria-busy", "true");
      var submitter = event.submitter;
      Promise.all(Array.prototype.map.call(inputs, replaceFiles))
        .catch(function () {
          // Sent as chosen: the server answers too large ones with a clear page.
        })
        .then(function () {
          busy = false;
          done = true;
          form.removeAttribute("aria-busy");
          // Sent as the parent sent it (the same button), now with the smaller pictures;
          // in a task of its own: with no picture chosen this runs in the microtasks of
          // the first submit event, while the browser still ignores another one.
          setTimeout(function () {
            if (form.requestSubmit) form.requestSubmit(submitter || undefined);
            else form.submit();
          }, 0);
        });
    });
  });
})();
